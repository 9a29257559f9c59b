// The whole build: our sources and uPlot's published files copied into dist/, and the request
// editor (CodeMirror 6 with its JSON Schema extension, editor/index.js) bundled by esbuild into
// dist/lib/editor.js, the one part that needs a bundler: CodeMirror ships as many small packages.
import { cpSync, mkdirSync, rmSync } from "node:fs";
import { build } from "esbuild";

const here = new URL(".", import.meta.url).pathname;
rmSync(`${here}dist`, { recursive: true, force: true });
mkdirSync(`${here}dist/lib`, { recursive: true });
cpSync(`${here}src`, `${here}dist`, { recursive: true });
for (const file of ["uPlot.esm.js", "uPlot.min.css"]) {
  cpSync(`${here}node_modules/uplot/dist/${file}`, `${here}dist/lib/${file}`);
}
// codemirror-json-schema renders descriptions as Markdown with a syntax highlighter (shiki) and
// parses YAML and JSON5 too: two thirds of the bundle, none of it used by a JSON editor whose
// descriptions are plain text. Those modules are replaced by small ones of ours, and so is its
// logger, which saves its (silent) level in the browser's localStorage: the viewer keeps nothing
// there.
const plainText = {
  name: "json-schema-plain-text",
  setup(b) {
    const stubs = {
      "utils/markdown.js": `const escape = (s) => String(s).replace(/[&<>"']/g, (c) => "&#" + c.charCodeAt(0) + ";");
        export function renderMarkdown(text) { return escape(text); }`,
      "utils/debug.js": `const quiet = () => {};
        export const debug = { trace: quiet, debug: quiet, info: quiet, warn: quiet, error: quiet, log: quiet };`,
      "parsers/yaml-parser.js": `export function parseYAMLDocumentState() { throw new Error("YAML is not read here"); }`,
      "parsers/json5-parser.js": `export function parseJSON5DocumentState() { throw new Error("JSON5 is not read here"); }
        export function parseJSON5Document() { throw new Error("JSON5 is not read here"); }`,
    };
    b.onLoad({ filter: /codemirror-json-schema[\\/]dist[\\/](utils[\\/](markdown|debug)|parsers[\\/](yaml|json5)-parser)\.js$/ }, (args) => {
      const key = Object.keys(stubs).find((name) => args.path.replaceAll("\\", "/").endsWith(name));
      return { contents: stubs[key], loader: "js" };
    });
  },
};
export const editorBuild = {
  plugins: [plainText],
  entryPoints: [`${here}editor/index.js`],
  outfile: `${here}dist/lib/editor.js`,
  bundle: true,
  format: "esm",
  minify: true,
  target: "es2022",
  legalComments: "linked", // the bundled packages' licences, in editor.js.LEGAL.txt
  logLevel: "warning",
};
await build(editorBuild);
console.log("viewer built into frontend/dist");
