// A package below the workspace root: its tasks run with "cwd": "packages/app".
export const answer: number = 42;
