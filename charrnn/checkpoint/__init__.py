"""A checkpoint as charrnn means it: what it holds (schema.py) and which one a command reads
(find.py). The file format itself is store/'s."""
