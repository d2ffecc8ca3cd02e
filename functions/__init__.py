"""One package per Lambda service. Each is shipped as its own asset, imported as `functions.<service>`."""
