// Entry point of the tray app for Electron (`npm run desktop`, and `main` of the packaged app).
// The logic is TypeScript compiled by `npm run build` to dist/desktop/src/ (ES modules).
'use strict';
const path = require('node:path');
const { pathToFileURL } = require('node:url');

import(pathToFileURL(path.join(__dirname, '..', 'dist', 'desktop', 'src', 'main.js')).href).catch((err) => {
  console.error('lab-gateway tray failed to start:', err);
  process.exit(1);
});
