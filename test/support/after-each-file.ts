// Loaded into every test file (jest setupFilesAfterEnv): whatever a file started is stopped when it ends.
import { stopAll } from './children.js';

afterAll(async () => {
  await stopAll();
});
