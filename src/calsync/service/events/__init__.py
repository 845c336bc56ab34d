"""Reading stored busy times: List Events, its cursors, live reads outside the horizon."""
