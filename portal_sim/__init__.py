"""A stand-in for the national portal (マイナポータル) as municipalities see it. Built in a later issue."""
