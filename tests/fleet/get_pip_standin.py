# Stand-in for pip's get-pip.py 21.3.1, which ansible-test 2.14 downloads from ansible's CI file
# server (not reachable from these machines) to put pip into the virtual environments of its
# sanity tests. tests/ansible_collection.rs places it where ansible-test caches that script
# (~/.ansible/test/cache/get_pip_21_3_1.py): it does what get-pip.py does, install the pip
# (and packages) requested on its command line, with Debian's pip wheel (python3-pip-whl)
# installing them from PyPI.
import glob
import sys

WHEELS = sorted(glob.glob("/usr/share/python-wheels/pip-*.whl"))
if not WHEELS:
    sys.exit("no /usr/share/python-wheels/pip-*.whl: apt-get install python3-pip-whl")
sys.path.insert(0, WHEELS[-1])
from pip._internal.cli.main import main  # noqa: E402

sys.exit(main(["install", "--upgrade", "--force-reinstall"] + sys.argv[1:]))
