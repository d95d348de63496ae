#!/usr/bin/env node
// The CLI is bundled (see scripts.build). Commands that only talk to daemons load a smaller
// bundle, so a cold `shellwire exec` (or `run`) compiles only the code it needs.
const command = process.argv[2];
const CLIENT = new Set(['exec', 'shell', 'tty']);
const FLEET = new Set(['run', 'hosts', 'discover']);
require(CLIENT.has(command) ? '../dist/shellwire-client.cjs' : FLEET.has(command) ? '../dist/shellwire-fleet.cjs' : '../dist/shellwire.cjs');
