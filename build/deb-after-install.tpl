#!/bin/bash
# Post-install of the Lab Gateway Tray .deb (electron-builder `deb.afterInstall`). It replaces
# electron-builder's default template, so it repeats its steps (the /usr/bin link, the
# chrome-sandbox mode) before ours. ${executable} and ${sanitizedProductName} are filled in by
# electron-builder when it builds the package.
#
# The gateway address at install time:
#   sudo env LAB_GATEWAY_URL=http://10.0.0.5:8484 dpkg -i lab-gateway-tray_<version>_amd64.deb
# writes /etc/lab-gateway/tray.json (kept on upgrades when LAB_GATEWAY_URL is not given).
set -e

if type update-alternatives >/dev/null 2>&1; then
    update-alternatives --install '/usr/bin/${executable}' '${executable}' '/opt/${sanitizedProductName}/${executable}' 100 || ln -sf '/opt/${sanitizedProductName}/${executable}' '/usr/bin/${executable}'
else
    ln -sf '/opt/${sanitizedProductName}/${executable}' '/usr/bin/${executable}'
fi

# Chromium's sandbox helper needs SUID only where unprivileged user namespaces are unavailable.
if ! { [[ -L /proc/self/ns/user ]] && unshare --user true; }; then
    chmod 4755 '/opt/${sanitizedProductName}/chrome-sandbox' || true
else
    chmod 0755 '/opt/${sanitizedProductName}/chrome-sandbox' || true
fi

if hash update-desktop-database 2>/dev/null; then
    update-desktop-database /usr/share/applications || true
fi

CONF_DIR=/etc/lab-gateway
CONF="$CONF_DIR/tray.json"
mkdir -p "$CONF_DIR"
if [ -n "$LAB_GATEWAY_URL" ]; then
    printf '{ "gatewayUrl": "%s" }\n' "$LAB_GATEWAY_URL" > "$CONF"
elif [ ! -f "$CONF" ]; then
    printf '{ "gatewayUrl": "http://127.0.0.1:8484" }\n' > "$CONF"
fi
chmod 0644 "$CONF"

# Start the tray at every desktop login (XDG autostart).
mkdir -p /etc/xdg/autostart
cat > /etc/xdg/autostart/lab-gateway-tray.desktop <<DESKTOP
[Desktop Entry]
Type=Application
Name=Lab Gateway Tray
Comment=Status of the lab gateway
Exec=/usr/bin/${executable}
Icon=${executable}
Terminal=false
X-GNOME-Autostart-enabled=true
DESKTOP
exit 0
