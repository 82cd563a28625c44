# Where the agent's keepalived check scripts are installed in the image.
export DIB_KEEPALIVED_SCRIPTS_DIR=${DIB_KEEPALIVED_SCRIPTS_DIR:-/usr/libexec/amphora/keepalived}
