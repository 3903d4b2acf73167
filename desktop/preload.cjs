// Preload of the status window (sandboxed, context-isolated). The gateway's status page needs
// nothing from the desktop, so this exposes only a read-only marker that it runs in the tray app.
'use strict';
const { contextBridge } = require('electron');

contextBridge.exposeInMainWorld('labGatewayDesktop', Object.freeze({ desktop: true }));
