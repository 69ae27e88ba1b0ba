#!/usr/bin/env node
// Rewrites the single-thread glue's export wrappers, one statement per C export
//   var _bn_create=Module["_bn_create"]=function(){return(_bn_create=Module["_bn_create"]=Module["asm"]["i"]).apply(null,arguments)};
// as one table of names and one loop that makes the same lazy wrappers (a call before the wasm
// is instantiated still reaches Module["asm"] when it runs). Nothing in the glue calls them by
// their var names; web/src/core.js calls Module["_bn_..."]. 55 statements of ~145 bytes each are
// about 0.5 KiB of the gzipped download (npm run size).
//   node scripts/compact-glue.mjs FILE
import { readFileSync, writeFileSync } from 'node:fs';

const file = process.argv[2];
const source = readFileSync(file, 'utf8');
const wrapper = /var (_\w+)=Module\["\1"\]=function\(\)\{return\(\1=Module\["\1"\]=Module\["asm"\]\["(\w+)"\]\)\.apply\(null,arguments\)\};/g;
const found = [...source.matchAll(wrapper)];
const fail = (why) => {
  console.error(`compact-glue: ${why}; update scripts/compact-glue.mjs`);
  process.exit(1);
};
if (found.length < 40) fail(`found ${found.length} export wrappers in ${file}, expected the C exports' (about 55)`);
const rest = source.replace(wrapper, '');
for (const [, name] of found) if (new RegExp(`\\b${name}\\b`).test(rest)) fail(`the glue uses ${name} by its var name`);
const core = readFileSync(new URL('../web/src/core.js', import.meta.url), 'utf8');
for (const [, name] of core.matchAll(/\bmod\._(bn_\w+)/g)) {
  if (!found.some(([, n]) => n === `_${name}`)) fail(`web/src/core.js calls _${name}, which the glue does not export`);
}
const table = Object.fromEntries(found.map(([, name, key]) => [name, key]));
const loop = `Object.entries(${JSON.stringify(table)}).forEach(function(e){Module[e[0]]=function(){return Module["asm"][e[1]].apply(null,arguments)}});`;
const at = source.indexOf(found[0][0]);
writeFileSync(file, source.slice(0, at) + loop + source.slice(at).replace(wrapper, ''));
console.log(`compact-glue: ${found.length} export wrappers as one table`);
