#!/usr/bin/env node
// The sign-up flow's preferences stage (stream mode): a filter and a
// splitter in one worker.
//
// The payload is a user as verify.py hands it on. A user who turned
// notifications off is dropped: an ok answer with "drop": true, no output.
// Any other user is emitted unchanged on the port named by its channel
// ("email" or "sms"); the pipeline file maps each port to its stage, so the
// worker knows nothing of where the user goes next.
'use strict';

function route(user) {
  if (user === null || typeof user !== 'object' || Array.isArray(user)) {
    throw new Error('a user is a JSON object');
  }
  if (user.notifications === false) return null;
  if (typeof user.channel !== 'string' || user.channel === '') {
    throw new Error('the user has no "channel"');
  }
  return user.channel;
}

function handle(line) {
  const item = JSON.parse(line);
  const out = [];
  try {
    const port = route(item.payload);
    if (port === null) {
      out.push({ id: item.id, ok: true, drop: true });
    } else {
      out.push({ id: item.id, emit: item.payload, port });
      out.push({ id: item.id, ok: true });
    }
  } catch (e) {
    out.push({ id: item.id, ok: false, error: e.message, retry: false });
  }
  // A write to a pipe is synchronous in Node on Linux: nothing to flush.
  process.stdout.write(out.map((o) => JSON.stringify(o) + '\n').join(''));
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
