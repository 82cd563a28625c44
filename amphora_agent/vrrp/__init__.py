"""keepalived on the amphora: VRRP config upload and service actions, and
keepalived LVS (UDP listener) configs. docs/keepalived.md."""
