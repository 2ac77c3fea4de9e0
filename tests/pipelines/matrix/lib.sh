summarize() { echo "args: $* mode=$MODE"; cat /valohai/inputs/data/*; }
