#!/usr/bin/env node
// Entry point of the `delst` command. The CLI is TypeScript compiled to dist/ by `npm ci` (the prepare script).
import '../dist/cli/delst.js';
