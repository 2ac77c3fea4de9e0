#!/bin/sh
echo "ran run.sh" > /valohai/outputs/ran.txt
