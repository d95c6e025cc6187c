"""Report builders the leaderboard, correlation and export endpoints call: plots and export files."""
