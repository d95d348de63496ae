#!/usr/bin/env node
// The CLI is bundled (see scripts.build). Commands that only talk to daemons load a smaller
// bundle, so a cold `shellwire exec` (or `run`) compiles only the code it needs. Which bundle
// runs which command is src/cli/command-table.cts (compiled to a few lines of data).
const command = process.argv[2];
const bundles = require('../dist/cli/command-table.cjs');
const bundle = command !== undefined && Object.hasOwn(bundles, command) ? bundles[command] : 'full';
require(bundle === 'client' ? '../dist/shellwire-client.cjs' : bundle === 'fleet' ? '../dist/shellwire-fleet.cjs' : '../dist/shellwire.cjs');
