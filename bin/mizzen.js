#!/usr/bin/env node
// The `mizzen` command. `npm ci` builds dist/ (the `prepare` script), so this runs the compiled CLI.
import '../dist/cli/main.js';
