model() { echo "model v1 of: $1"; }
