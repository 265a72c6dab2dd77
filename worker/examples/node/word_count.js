#!/usr/bin/env node
// A hopper worker in Node.js, stream mode: one JSON line in, one JSON line out.
//
// The payload is a string (count its words), {"text": "..."} (count those) or
// {"path": "..."} (count the words in that file); the result is {"words": N}.
// Anything else is a permanent failure. Words are runs of anything but ASCII
// whitespace, as in every example.
'use strict';
const fs = require('fs');

const countWords = (text) => (text.match(/[^ \t\n\v\f\r]+/g) || []).length;

function wordCount(payload) {
  const obj = payload !== null && typeof payload === 'object' ? payload : {};
  if (typeof payload === 'string') return countWords(payload);
  if (typeof obj.text === 'string') return countWords(obj.text);
  if (typeof obj.path === 'string') return countWords(fs.readFileSync(obj.path, 'utf8'));
  throw new Error('payload must be a string, or an object with a "text" or "path" string');
}

function handle(line) {
  const item = JSON.parse(line);
  let answer;
  try {
    answer = { ok: true, result: { words: wordCount(item.payload) } };
  } catch (e) {
    answer = { ok: false, error: e.message, retry: false };
  }
  // A write to a pipe is synchronous in Node on Linux: nothing to flush.
  process.stdout.write(JSON.stringify({ id: item.id, ...answer }) + '\n');
}

// Lines end at \n only (not readline: it also ends a line at a \r, which is
// JSON whitespace), and may be of any length. At EOF Node exits by itself.
let pending = [];
process.stdin.on('data', (chunk) => {
  let start = 0;
  for (let nl; (nl = chunk.indexOf(10, start)) >= 0; start = nl + 1) {
    handle(Buffer.concat([...pending, chunk.subarray(start, nl)]).toString());
    pending = [];
  }
  pending.push(chunk.subarray(start));
});
