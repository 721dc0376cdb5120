// Builds webapp/dist: hashed assets under /assets/, a .gz beside every text file (the API sends it
// to clients that accept gzip), and bundle-size.json; the build fails over the JavaScript budget.
import { gzipSync } from "node:zlib";
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { defineConfig } from "vite";

const JS_BUDGET_GZIP = 200 * 1024;
const COMPRESS = /\.(html|js|css|svg|json|txt)$/;

function files(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : [path];
  });
}

function precompressAndMeasure() {
  let outDir;
  return {
    name: "iotcloud-precompress",
    apply: "build",
    configResolved(config) { outDir = config.build.outDir; },
    closeBundle() {
      const sizes = {};
      for (const path of files(outDir)) {
        if (!COMPRESS.test(path) || path.endsWith("bundle-size.json")) continue;
        const body = readFileSync(path);
        const gz = gzipSync(body, { level: 9 });
        writeFileSync(`${path}.gz`, gz);
        sizes[relative(outDir, path)] = { bytes: body.length, gzip: gz.length };
      }
      const jsGzip = Object.entries(sizes).filter(([p]) => p.endsWith(".js")).reduce((n, [, s]) => n + s.gzip, 0);
      writeFileSync(join(outDir, "bundle-size.json"), JSON.stringify({ js_gzip_bytes: jsGzip, budget: JS_BUDGET_GZIP, files: sizes }, null, 2));
      console.log(`JavaScript: ${(jsGzip / 1024).toFixed(1)} KiB gzipped (budget ${JS_BUDGET_GZIP / 1024} KiB)`);
      if (jsGzip > JS_BUDGET_GZIP) throw new Error("the JavaScript shipped is over its 200 KiB gzip budget");
    },
  };
}

export default defineConfig({
  esbuild: { jsx: "automatic", jsxImportSource: "preact" },
  build: {
    modulePreload: { polyfill: false }, // the polyfill would be the only inline-ish code; modern browsers need none
    target: "es2022",
    assetsInlineLimit: 0,               // no data: URLs, so a strict CSP (img-src 'self') holds
    reportCompressedSize: false,
  },
  plugins: [precompressAndMeasure()],
});
