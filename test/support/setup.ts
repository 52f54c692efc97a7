// Loaded before every test file (vitest setupFiles). Keeps tests honest about the environment
// they run in: no inherited Airlock credentials leak into a test's processes.
delete process.env.AIRLOCK_API_KEY;
delete process.env.AIRLOCK_SERVER;
