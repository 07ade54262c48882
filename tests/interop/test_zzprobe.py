import json
from tests.interop.layouts import readImage, readIndex
def test_probe(registryd, distribution, skopeo, ociLayout, tmp_path):
    layout = ociLayout()
    image = layout.addImage("v1")
    index = layout.addIndex("multi")
    r = registryd()
    res = skopeo.copy(layout.reference("v1"), r.docker("lib/app", "v1"))
    print(res.stderr, res.stdout)
    res = skopeo.copy(r.docker("lib/app", "v1"), f"oci:{tmp_path}/out:v1")
    back = readImage(f"{tmp_path}/out", "v1")
    print(back.digest == image.digest, back.manifest == image.manifest)
    res = skopeo.copy(layout.reference("multi"), r.docker("lib/app", "multi"), "--all")
    print(res.stderr, res.stdout)
    res = skopeo.copy(r.docker("lib/app", "multi"), f"oci:{tmp_path}/out2:multi", "--all")
    back = readIndex(f"{tmp_path}/out2", "multi")
    print(back.manifest == index.manifest, back.manifest[:300])
    d = distribution()
    print(d.catalog())
    assert 0
