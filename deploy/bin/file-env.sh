#!/bin/sh
# For images that read secrets only from plain variables: every VARIABLE_FILE that names a file
# under /run/secrets becomes VARIABLE (the file's content less its trailing newlines), then the
# command runs. Other *_FILE variables (SSL_CERT_FILE, ...) are left as they are.
#
#   entrypoint: ["sh", "/usr/local/bin/file-env", "docker-entrypoint.sh"]
set -eu

for variable in $(env | sed -n 's|^\([A-Za-z_][A-Za-z0-9_]*\)_FILE=/run/secrets/.*|\1|p'); do
    eval "path=\${${variable}_FILE}"
    if [ ! -f "$path" ] || [ ! -r "$path" ]; then
        echo "file-env: ${variable}_FILE=$path: the secret file cannot be read" >&2
        exit 1
    fi
    value=$(cat "$path")
    export "$variable=$value"
    unset "${variable}_FILE"
done
exec "$@"
