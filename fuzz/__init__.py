"""Coverage-guided fuzz targets for lkproto (atheris); see fuzz/README.md."""
