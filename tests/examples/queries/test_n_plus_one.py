from sqlalchemy import select

from blog import Author, Post


def titles_by_author(session):
    authors = session.scalars(select(Author).order_by(Author.name))
    return {author.name: [post.title for post in author.posts] for author in authors}


def test_titles_by_author(db_session, db_assert_max_num_queries):
    for name in ("ann", "bob", "cy"):
        db_session.add(Author(name=name, posts=[Post(title=f"{name}'s first post")]))
    db_session.commit()

    with db_assert_max_num_queries(2):
        titles = titles_by_author(db_session)

    assert titles["bob"] == ["bob's first post"]
