"""Server-sent event streams: live events fanned out per replica, replayed from the record."""
