"""Storage backends. Import the submodule you need: importing this package
loads nothing, so reading ``backends.base`` never imports SQLAlchemy."""
