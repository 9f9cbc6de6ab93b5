"""Message consumers: what the api does with the events it hears."""
