#!/usr/bin/env node
// The CLI is one bundled file (see scripts.build): a cold `shellwire exec` then loads one
// module instead of ~40, which is a third of its start-up time.
require('../dist/shellwire.cjs');
