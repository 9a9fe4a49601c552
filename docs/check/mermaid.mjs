// Parses every ```mermaid block of the given Markdown files with mermaid's own parser, offline
// (jsdom stands in for the browser the renderer would need). Prints `file:line: error` for each
// block that does not parse and exits 1 if any did. Used by scripts/check-docs.sh.
import { readFileSync } from 'node:fs';
import { JSDOM } from 'jsdom';

const dom = new JSDOM('<!doctype html><html><body></body></html>');
globalThis.window = dom.window;
globalThis.document = dom.window.document;
const { default: mermaid } = await import('mermaid');
mermaid.initialize({ startOnLoad: false, securityLevel: 'strict' });

/** The mermaid blocks of one Markdown text: [{line, source}] (line: 1-based, of the fence). */
export function blocks(text) {
  const out = [];
  const lines = text.split('\n');
  let open = null;
  for (let i = 0; i < lines.length; i++) {
    const fence = lines[i].match(/^\s*(```+|~~~+)\s*([\w-]*)/);
    if (!fence) {
      if (open && open.mermaid) open.body.push(lines[i]);
      continue;
    }
    if (open === null) {
      open = { fence: fence[1], mermaid: fence[2] === 'mermaid', line: i + 1, body: [] };
    } else if (lines[i].trim().startsWith(open.fence[0].repeat(open.fence.length)) && fence[2] === '') {
      if (open.mermaid) out.push({ line: open.line, source: open.body.join('\n') });
      open = null;
    } else if (open.mermaid) {
      open.body.push(lines[i]);
    }
  }
  return out;
}

let failed = 0;
let parsed = 0;
for (const file of process.argv.slice(2)) {
  for (const b of blocks(readFileSync(file, 'utf8'))) {
    try {
      await mermaid.parse(b.source);
      parsed++;
    } catch (e) {
      failed++;
      const first = String(e?.message ?? e).split('\n').slice(0, 3).join(' | ');
      console.log(`${file}:${b.line}: mermaid block does not parse: ${first}`);
    }
  }
}
console.log(`mermaid: ${parsed} block(s) parse, ${failed} do not`);
process.exit(failed ? 1 : 0);
