"""What the plugin knows about frameworks that wrap SQLAlchemy's session factories.

Each module here is imported only when the application has already imported its framework, so a
project without it pays nothing and needs nothing installed.
"""
