#!/bin/sh
# Installed by the amphora agent as {base_path}/vrrp/check_script.sh, the
# path Octavia's keepalived template names. Succeeds when every load balancer
# with an installed HAProxy config has a live HAProxy master (its pid file
# names a running process). keepalived runs it as root for Octavia's configs;
# configs from keepalived/ track HAProxy with vrrp_track_process instead.
base=$(cd "$(dirname "$0")/.." && pwd) || exit 1
for cfg in "$base"/*/haproxy.cfg; do
    [ -e "$cfg" ] || continue
    pid=$(head -n 1 "${cfg%/haproxy.cfg}/haproxy.pid" 2>/dev/null) || exit 1
    case "$pid" in
        ''|*[!0-9]*) exit 1 ;;
    esac
    [ -d "/proc/$pid" ] || exit 1
done
exit 0
