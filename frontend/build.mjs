// The whole build: copy our sources and uPlot's published files into dist/. No bundler.
import { cpSync, mkdirSync, rmSync } from "node:fs";

const here = new URL(".", import.meta.url).pathname;
rmSync(`${here}dist`, { recursive: true, force: true });
mkdirSync(`${here}dist/lib`, { recursive: true });
cpSync(`${here}src`, `${here}dist`, { recursive: true });
for (const file of ["uPlot.esm.js", "uPlot.min.css"]) {
  cpSync(`${here}node_modules/uplot/dist/${file}`, `${here}dist/lib/${file}`);
}
console.log("viewer built into frontend/dist");
