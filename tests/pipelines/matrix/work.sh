. ./lib.sh
summarize "$@" > /valohai/outputs/result.txt
