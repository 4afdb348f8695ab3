"""Builds the extension shmfd._shmfd with CMake for `pip install .` (see pyproject.toml).

The extension links the C++ client library, libshmfd; a wheel carries its own copy beside the
extension (found through the extension's RPATH, $ORIGIN), so nothing else of shmfd needs to be
installed. Cap'n Proto's runtime comes from the system (Debian's libcapnp-0.9.2)."""
import glob
import os
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
os.makedirs(os.path.join(HERE, "build-pip"), exist_ok=True)  # setup.cfg's egg_base


class CMakeExtension(Extension):
    def __init__(self, name):
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        out_dir = os.path.dirname(os.path.abspath(self.get_ext_fullpath(ext.name)))
        build_dir = os.path.join(HERE, "build-pip")
        args = [
            "-G", "Ninja",
            "-DCMAKE_BUILD_TYPE=Release",
            "-DSHMFD_BUILD_TESTS=OFF",
            "-DSHMFD_BUILD_BENCH=OFF",
            "-DSHMFD_BUILD_EXAMPLES=OFF",
            "-DSHMFD_BUILD_DOCS=OFF",
            "-DSHMFD_WERROR=OFF",
            "-DSHMFD_PYTHON_RPATH=$ORIGIN",
            f"-DPython3_EXECUTABLE={sys.executable}",
        ]
        try:
            import pybind11

            args.append(f"-Dpybind11_DIR={pybind11.get_cmake_dir()}")
        except ImportError:
            pass  # Debian's pybind11-dev, found by CMake
        subprocess.run(["cmake", "-S", HERE, "-B", build_dir, *args], check=True)
        jobs = os.environ.get("JOBS", str(os.cpu_count() or 2))
        subprocess.run(["cmake", "--build", build_dir, "-j", jobs, "--target", "shmfd_python"],
                       check=True)
        os.makedirs(out_dir, exist_ok=True)
        (extension,) = glob.glob(os.path.join(build_dir, "python", "shmfd", "_shmfd*.so"))
        shutil.copy2(extension, os.path.join(out_dir, os.path.basename(self.get_ext_fullpath(ext.name))))
        # libshmfd.so.X.Y, the name the extension asks for (its SONAME), beside it. build-pip
        # is kept between installs: after a SONAME bump it also holds the old one, so the
        # newest is the one just built.
        libraries = [p for p in glob.glob(os.path.join(build_dir, "libshmfd", "libshmfd.so.*"))
                     if os.path.basename(p).count(".") == 3]
        library = max(libraries, key=lambda p: os.path.getmtime(os.path.realpath(p)))
        shutil.copy2(os.path.realpath(library), os.path.join(out_dir, os.path.basename(library)))


setup(ext_modules=[CMakeExtension("shmfd._shmfd")], cmdclass={"build_ext": CMakeBuild})
