// Copies osc.js's prebuilt browser file and its licences into vendor/, where the page and the
// Python package take them from. Run through scripts/build-browser.
import { copyFileSync, mkdirSync } from "node:fs";

const from = "node_modules/osc";
mkdirSync("vendor", { recursive: true });
for (const [source, target] of [
  ["dist/osc-browser.min.js", "osc-browser.min.js"],
  ["MIT-LICENSE.txt", "osc.js-MIT-LICENSE.txt"],
  ["GPL-LICENSE.txt", "osc.js-GPL-LICENSE.txt"],
]) {
  copyFileSync(`${from}/${source}`, `vendor/${target}`);
  console.log(`vendor/${target}`);
}
