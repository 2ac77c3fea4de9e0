import valohai

for name in ("shards/a.txt", "shards/deeper/b.txt", "other/c.txt"):
    with open(valohai.outputs().path(name), "w") as f:
        f.write(name)
