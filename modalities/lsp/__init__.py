"""``modalities lsp``: the config compiler as a Language Server Protocol server.

A thin layer over the compiler: every check is the compile `modalities validate` runs (the same stages, the
run contract included) on the editor's unsaved text, and navigation reads what that compile produced (the
source map, the component graph, the interpolations' provenance). Nothing here checks a config itself.

- ``text``: positions (LSP's UTF-16 columns against the compiler's 1-based spans) and the YAML context of a
  cursor in text that may not parse while it is being typed;
- ``analysis``: one check of a config, its diagnostics grouped by the file that holds them, and what is where;
- ``features``: completion, hover, definition, references, rename, as functions of an analysis;
- ``server``: the pygls server: documents, checks on open and change (coalesced), publishing.
"""
