. ./lib.sh
model "$(cat /valohai/inputs/data/clean.txt)" > /valohai/outputs/model.txt
