"""The limits a config must stay within, checked before a stage does work that could crash or explode.

A config is small, shallow data. These bounds are far above any real one (the reference's largest published
config is 465 lines, 8 levels deep) and far below what makes a parser crash, a process run out of memory, or
a terminal drown in output:

- ``MAX_CONFIG_BYTES``: the size of a config file (or a ``--set`` value); for a config composed of several files
  (``extends:``, several files on the command line), of all of them together.
- ``MAX_CONFIG_FILES``: files one composed config reads (a chain or tree of ``extends``).
- ``MAX_DEPTH``: nesting levels of mappings and lists, counted after YAML aliases are expanded. Deeper input is
  refused while it is read, before it reaches a parser that recurses (libyaml's composer crashes at ~50,000).
- ``MAX_VALUES``: values and list items of the whole config (of all its files together), after aliases are
  expanded and after ``${...}`` interpolations are copied in ("billion laughs" and interpolation fan-out stop
  here). A real config has a few thousand; 250,000 still allows e.g. a combined dataset of tens of thousands of files.
- ``MAX_STRING_CHARS``: the length of one string after interpolation.
- ``MAX_INTERPOLATION_CHAIN``: interpolations each reading the next (``a: ${b}``, ``b: ${c}``, ...); each link is
  resolved inside the one before, so a longer chain would exhaust the stack. Real configs chain a handful.
- ``MAX_INT_DIGITS``: digits of an integer literal (Python's own limit for converting text to int).
- ``MAX_REPORTED_PER_MESSAGE``: errors reported with the same message at different places (e.g. every item of a
  long list); the rest are counted in one line, "and N more like this".
- ``MAX_REPORTED``: errors and warnings reported in all.
"""

MAX_CONFIG_BYTES = 16 * 1024 * 1024
MAX_CONFIG_FILES = 100
MAX_DEPTH = 100
MAX_VALUES = 250_000
MAX_STRING_CHARS = 1_000_000
MAX_INTERPOLATION_CHAIN = 64
MAX_INT_DIGITS = 4300
MAX_REPORTED_PER_MESSAGE = 5
MAX_REPORTED = 200
