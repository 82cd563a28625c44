# Where the agent's virtualenv lives inside the image.
export DIB_AMPHORA_AGENT_VENV=${DIB_AMPHORA_AGENT_VENV:-/opt/amphora-agent}

# The project tree: the parent of the elements directory holding this element.
if [ -z "${DIB_AMPHORA_SOURCE:-}" ]; then
    for _amp_dir in ${ELEMENTS_PATH//:/ }; do
        if [ -d "${_amp_dir}/amphora-agent" ] && [ -f "${_amp_dir}/../setup.cfg" ]; then
            DIB_AMPHORA_SOURCE=$(cd "${_amp_dir}/.." && pwd)
            break
        fi
    done
    unset _amp_dir
fi
export DIB_AMPHORA_SOURCE=${DIB_AMPHORA_SOURCE:-}
