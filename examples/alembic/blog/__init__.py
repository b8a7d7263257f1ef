"""A small blog: users write posts in categories; published posts are listed through a view."""
