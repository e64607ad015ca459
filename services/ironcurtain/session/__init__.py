"""Running a whole agent session: compose up, verify isolation, run the agent, tear down."""
