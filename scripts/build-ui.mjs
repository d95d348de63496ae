// Bundles the web console's browser code (ui/) into dist/ui/ for `shellwire gateway --web`:
// index.html, assets/app.js (an ES module, minified; no source maps, as for the Node build; the recordings player is a
// chunk-*.js loaded when first used, as is xterm.js) and assets/app.css (ours plus xterm.js's and asciinema-player's). Everything is local: the gateway may run offline, and
// the page's CSP allows scripts from its own origin only (no inline script, no eval).
// Part of `npm run build`.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist', 'ui');
mkdirSync(join(out, 'assets'), { recursive: true });

await build({
  entryPoints: [join(root, 'ui', 'src', 'main.ts')],
  outdir: join(out, 'assets'),
  entryNames: 'app',
  // The recordings player (asciinema-player, with WebAssembly inside) is a chunk loaded on first use.
  splitting: true,
  chunkNames: 'chunk-[hash]',
  bundle: true,
  minify: true,
  sourcemap: false,
  format: 'esm',
  platform: 'browser',
  target: ['chrome110', 'firefox115', 'safari16'],
  // Fonts or images a stylesheet names become files next to app.css.
  loader: { '.woff': 'file', '.woff2': 'file', '.ttf': 'file', '.svg': 'file', '.png': 'file' },
  assetNames: '[name]-[hash]',
  legalComments: 'linked',
  logLevel: 'warning',
  tsconfig: join(root, 'ui', 'tsconfig.json'),
});
copyFileSync(join(root, 'ui', 'index.html'), join(out, 'index.html'));

if (process.env.SHELLWIRE_UI_SIZES) {
  for (const f of ['assets/app.js', 'assets/app.css', 'index.html']) console.log(`${f} ${statSync(join(out, f)).size}`);
}
