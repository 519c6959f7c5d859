-- Open a config in headless Neovim with `modalities lsp` as its language server, wait for the server's
-- diagnostics, write them as JSON to $LSP_OUT and quit. Started by tests/lsp/test_neovim.py:
--   LSP_CONFIG=... LSP_OUT=... LSP_PYTHON=... nvim --headless --clean -c "luafile tests/lsp/nvim_diagnostics.lua"
local config = os.getenv("LSP_CONFIG")
local out = os.getenv("LSP_OUT")
local cmd = { os.getenv("LSP_PYTHON"), "-m", "modalities", "lsp" }
local root = vim.fn.fnamemodify(config, ":h:h")

vim.cmd("edit " .. vim.fn.fnameescape(config))
local buffer = vim.api.nvim_get_current_buf()
local client
if vim.lsp.start then -- Neovim 0.8 and later: what docs/ide.md shows
  client = vim.lsp.start({ name = "modalities", cmd = cmd, root_dir = root })
else -- Neovim 0.7 (Debian 12's)
  client = vim.lsp.start_client({ name = "modalities", cmd = cmd, root_dir = root })
  vim.lsp.buf_attach_client(buffer, client)
end

local arrived = vim.wait(120000, function()
  return #vim.diagnostic.get(buffer) > 0
end, 50)

local found = {}
for _, d in ipairs(vim.diagnostic.get(buffer)) do
  table.insert(found, { lnum = d.lnum, col = d.col, severity = d.severity, message = d.message, source = d.source })
end
local file = io.open(out, "w")
file:write(vim.json.encode({ arrived = arrived, diagnostics = found }))
file:close()
vim.lsp.stop_client(client)
vim.cmd("qa!")
