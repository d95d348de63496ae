#!/usr/bin/env node
// The CLI is bundled (see scripts.build). Commands that only talk to a daemon load the small
// client bundle: a cold `shellwire exec` compiles a fraction of the code.
const CLIENT_COMMANDS = new Set(['exec', 'shell', 'tty']);
require(CLIENT_COMMANDS.has(process.argv[2]) ? '../dist/shellwire-client.cjs' : '../dist/shellwire.cjs');
