"""AppTests of the pages (app_pages/)."""
