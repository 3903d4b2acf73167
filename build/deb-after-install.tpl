#!/bin/bash
# Post-install of the Lab Gateway Tray .deb (electron-builder `deb.afterInstall`). It replaces
# electron-builder's default template, so it repeats its steps (the /usr/bin link, the
# chrome-sandbox mode) before ours. ${executable} and ${sanitizedProductName} are filled in by
# electron-builder when it builds the package.
#
# The gateway address at install time:
#   sudo env LAB_GATEWAY_URL=http://10.0.0.5:8484 dpkg -i lab-gateway-tray_<version>_amd64.deb
# writes /etc/lab-gateway/tray.json. An upgrade keeps that file; with LAB_GATEWAY_URL only its
# address is replaced. An address without http:// is completed; one the tray would refuse is not
# written (a warning says why; the install goes on).
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

# >>> tray.json  (run by test/unit/tray-deb-config.test.ts; no brace-style $-names here: electron-builder
# fills those in, and fails on a name it does not know)
# The address given in LAB_GATEWAY_URL, as the tray takes it: blanks trimmed, http:// added when no
# scheme is given. One the tray would refuse is not written (the install says why, and goes on).
CONF_DIR=/etc/lab-gateway
CONF="$CONF_DIR/tray.json"
mkdir -p "$CONF_DIR"
url="$LAB_GATEWAY_URL"
url="$(printf '%s' "$url" | sed -E 's/^[[:space:]]+//; s/[[:space:]]+$//')"
if [ -n "$url" ]; then
    case "$url" in
        *://*) ;;
        *) url="http://$url" ;;
    esac
    why=""
    case "$url" in
        http://* | https://*) ;;
        *) why="it must start with http:// or https://" ;;
    esac
    host="$(printf '%s' "$url" | sed -E 's|^[a-zA-Z]+://||')"
    if [ -z "$why" ]; then
        case "$host" in
            '' | /* | :*) why="it names no host" ;;
        esac
    fi
    if [ -z "$why" ]; then
        case "$url" in
            *[[:space:]]* | *'"'* | *'\'*) why="it contains a space, a quote or a backslash" ;;
            *@*) why="it contains a user name or password (@), which the tray does not use" ;;
        esac
    fi
    if [ -n "$why" ]; then
        echo "lab-gateway-tray: LAB_GATEWAY_URL=$LAB_GATEWAY_URL is not used: $why (for example http://10.0.0.5:8484); $CONF left as it was" >&2
        url=""
    fi
fi
# An upgrade keeps the file: only its address changes when one is given (the admin token file,
# MQTT settings… IT wrote there stay). No JSON parser can be relied on here, so the address is
# edited only where the edit is safe: one "gatewayUrl" in the file, a plain string on one line
# (no quote or backslash in it). Otherwise (an escaped quote, null, a number, two keys…) the file
# is left as it was and the install says why, rather than risk a file the tray cannot read.
# Only a file created here gets its mode set: one IT made group-readable stays so.
sed_url="$(printf '%s' "$url" | sed -e 's/[&|]/\\&/g')"
created=""
if [ -n "$url" ] && [ -f "$CONF" ]; then
    keys="$(grep -o 'gatewayUrl' "$CONF" | wc -l)"
    if [ "$keys" -eq 1 ] && grep -qE '"gatewayUrl"[[:space:]]*:[[:space:]]*"[^"\\]*"[[:space:]]*([,}]|$)' "$CONF"; then
        sed -i -E 's|("gatewayUrl"[[:space:]]*:[[:space:]]*")[^"]*"|\1'"$sed_url"'"|' "$CONF"
    elif [ "$keys" -ne 0 ]; then
        echo "lab-gateway-tray: LAB_GATEWAY_URL=$url is not written: the \"gatewayUrl\" in $CONF is not one plain \"gatewayUrl\": \"http://...\" line; $CONF left as it was (edit it by hand)" >&2
    elif ! grep -q '"' "$CONF"; then
        # No key at all ({} or empty): nothing to keep.
        printf '{ "gatewayUrl": "%s" }\n' "$url" > "$CONF"
    elif [ "$(tr -d '[:space:]' < "$CONF" | cut -c1)" = "{" ]; then
        # An object with other settings and no address: the address goes first.
        sed -i -E '0,/[{]/s|[{]|{ "gatewayUrl": "'"$sed_url"'",|' "$CONF"
    else
        echo "lab-gateway-tray: LAB_GATEWAY_URL=$url is not written: $CONF is not a JSON object; $CONF left as it was (edit it by hand)" >&2
    fi
elif [ -n "$url" ]; then
    printf '{ "gatewayUrl": "%s" }\n' "$url" > "$CONF"
    created=1
elif [ ! -f "$CONF" ]; then
    printf '{ "gatewayUrl": "http://127.0.0.1:8484" }\n' > "$CONF"
    created=1
fi
if [ -n "$created" ]; then
    chmod 0644 "$CONF"
fi
# <<< tray.json

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
