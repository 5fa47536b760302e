// The project the dashboard works in (remembered in localStorage); every list is scoped to it.
import { useQuery } from '@tanstack/react-query';
import { createContext, type ReactNode, useContext, useMemo, useState } from 'react';
import { api, call, type Schemas } from '../api/client';

const KEY = 'tunery.project';

interface ProjectValue {
  projects: Schemas['ProjectPublic'][];
  project: Schemas['ProjectPublic'] | null;
  projectId: string | null;
  loading: boolean;
  select: (id: string) => void;
}

const ProjectContext = createContext<ProjectValue | null>(null);

export function ProjectProvider({ children }: { children: ReactNode }) {
  const [chosen, setChosen] = useState<string | null>(() => localStorage.getItem(KEY));
  const list = useQuery({ queryKey: ['projects'], queryFn: () => call(api.GET('/api/projects')) });
  const value = useMemo<ProjectValue>(() => {
    const projects = list.data ?? [];
    const project = projects.find((p) => p.id === chosen) ?? projects[0] ?? null;
    return {
      projects,
      project,
      projectId: project?.id ?? null,
      loading: list.isLoading,
      select: (id: string) => {
        localStorage.setItem(KEY, id);
        setChosen(id);
      },
    };
  }, [list.data, list.isLoading, chosen]);
  return <ProjectContext.Provider value={value}>{children}</ProjectContext.Provider>;
}

export function useProject(): ProjectValue {
  const value = useContext(ProjectContext);
  if (!value) throw new Error('useProject outside ProjectProvider');
  return value;
}

/** The current project's id; pages render only inside a chosen project. */
export function useProjectId(): string {
  const { projectId } = useProject();
  if (!projectId) throw new Error('no project chosen');
  return projectId;
}
