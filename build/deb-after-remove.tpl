#!/bin/bash
# Post-remove of the Lab Gateway Tray .deb (replaces electron-builder's default template, so it
# repeats its step: the /usr/bin link). Keeps /etc/lab-gateway/tray.json unless purged.
if type update-alternatives >/dev/null 2>&1; then
    update-alternatives --remove '${executable}' '/opt/${sanitizedProductName}/${executable}' || true
else
    rm -f '/usr/bin/${executable}'
fi
rm -f /etc/xdg/autostart/lab-gateway-tray.desktop
if [ "$1" = "purge" ]; then
    rm -f /etc/lab-gateway/tray.json
fi
exit 0
