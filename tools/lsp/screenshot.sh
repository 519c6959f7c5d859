#!/usr/bin/env bash
# How docs/images/lsp-*.png were made: Neovim with `modalities lsp` in an xterm on a virtual X display (Xvfb),
# captured with ImageMagick's `import`. Needs: apt-get install neovim xvfb xterm imagemagick fonts-dejavu-core
#   bash tools/lsp/screenshot.sh [OUT_DIR]   (default docs/images)
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$repo/docs/images}
demo=$(mktemp -d)
mkdir -p "$demo/configs" && ln -s "$repo/data" "$demo/data"
python3 - "$repo" "$demo" <<'PY'
import sys
repo, demo = sys.argv[1:]
text = open(f"{repo}/configs/quickstart.yaml").read()
open(f"{demo}/configs/quickstart.yaml", "w").write(text.replace("instance_key: model_raw\n", "instance_key: model_rav\n", 1))
open(f"{demo}/configs/contract.yaml", "w").write(text.replace("vocab_size: 2048\n", "vocab_size: 100\n", 1))
PY
cat > "$demo/init.lua" <<LUA
vim.opt.number = true
vim.opt.signcolumn = "yes"
vim.cmd("syntax on")
vim.diagnostic.config({ virtual_text = { prefix = "■" }, underline = true, signs = true, severity_sort = true })
vim.cmd("highlight NormalFloat ctermbg=236 ctermfg=252")
vim.cmd("highlight FloatBorder ctermbg=236 ctermfg=245")
vim.api.nvim_create_autocmd("FileType", { pattern = "yaml", callback = function(args)
  local config = { name = "modalities", cmd = { "python3", "-m", "modalities", "lsp" }, root_dir = "$demo" }
  if vim.lsp.start then vim.lsp.start(config) else vim.lsp.buf_attach_client(args.buf, vim.lsp.start_client(config)) end
end })
LUA
Xvfb :99 -screen 0 1500x860x24 >/dev/null 2>&1 &
xvfb=$!
trap 'kill $xvfb 2>/dev/null; rm -rf "$demo"' EXIT
sleep 2
shot() { # config line column top-line output
  line=$(grep -n "$2" "$demo/configs/$1" | head -1 | cut -d: -f1)
  (cd "$demo" && DISPLAY=:99 PYTHONPATH="$repo" xterm -geometry 150x40+0+0 -bg "#1e1e1e" -fg "#d4d4d4" \
    -fa "DejaVu Sans Mono" -fs 10 -e nvim -u "$demo/init.lua" -c "normal! $((line - $4))Gzt" -c "normal! ${line}G$3|" \
    -c "lua vim.defer_fn(function() vim.diagnostic.open_float({border='single'}) end, 4000)" "configs/$1") &
  term=$!
  sleep 9
  DISPLAY=:99 import -window root "$demo/raw.png"
  kill $term
  convert "$demo/raw.png" -crop 1205x668+0+0 +repage "$out/$5"
}
shot quickstart.yaml "instance_key: model_rav" 24 12 lsp-reference-error.png
shot contract.yaml "vocab_size: 100" 17 15 lsp-contract-error.png
