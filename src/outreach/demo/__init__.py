"""`outreach demo`: the whole product end to end on a throw-away database, offline."""
