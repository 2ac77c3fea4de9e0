# prepare the data
sort /valohai/inputs/raw/data.txt > /valohai/outputs/clean.txt
